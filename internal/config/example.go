package config

// Example returns a commented example configuration for a host "pbx1" in a
// pool of three, using every key. It passes Parse; `pbxsync check
// --example` prints it.
func Example() string { return example }

const example = `# /etc/pbxsync/pbxsync.toml: the pbxsync configuration of one host.
# Every host of the farm has its own file; they differ in [node] and in
# the [[peer]] list. Check a file with: pbxsync check --config FILE

[node]
name = "pbx1"                 # required: this host's name, unique in the farm
listen = "0.0.0.0:7420"       # required: host:port (UDP) for QUIC; ":7420" = all addresses
data_dir = "/var/lib/pbxsync" # absolute; identity, store and journals (default /var/lib/pbxsync)
http = "127.0.0.1:7421"       # optional host:port: /healthz, /metrics, the dashboard at /, /api/v1
                              # (actions need the token 'pbxsync token' prints); keep it on
                              # 127.0.0.1 unless it serves TLS: another address without
                              # http_cert/http_key logs a warning (the token would cross in clear)
http_cert = "/etc/pbxsync/https.crt" # optional: with http_key, the listener serves HTTPS (PEM files)
http_key = "/etc/pbxsync/https.key"  # the certificate's private key (both or neither)
log_level = "info"            # debug, info, warn or error (default info)
site = "fra"                  # optional: this host's data centre; templates see .Node.Site
memory_limit = "48MiB"        # soft limit of the agent's Go heap: near it the garbage collector runs
                              # more often (never an error); a live heap past 3/4 of it raises the
                              # limit to 4/3 of the live heap while it lasts; "off" or 0: none
                              # (default 48MiB)

# This host's own values for templates (see templates below): .Vars.KEY.
# Strings, numbers or booleans; a template that names a missing one fails.
[node.vars]
external_ip = "203.0.113.11"
bind = "10.0.0.1"

# Every other host this one talks to, pinned by its ID.
# Run "pbxsync id" on a host to print its ID.
[[peer]]
name = "pbx2"                 # required, unique; the name jobs use
address = "10.0.0.2:7420"     # host:port (UDP); dialed by this host
id = "OWDXXNA5HE5V7R-OCFLTTA5TMN3IH-AB2BRRMSLLCTPE-2P6EVMVXOZJFA5"

[[peer]]
name = "pbx3"
address = "pbx3.example.net:7420" # leave it out for a peer that only dials in
id = "MSFKLRLZ7MYPHW-CXXITMX23WIIDO-D2SETXUSM2BV4K-A6PTTCTWKBEFQM"
site = "ams"                  # optional: its data centre (default: this host's site);
                              # a push job sends a change once to each other site,
                              # to a relay among its targets there, which forwards it
relay = true                  # optional: prefer this peer as its site's relay (default false)

# A push job: pbx1 is the primary, its /etc/asterisk goes to the others.
[[job]]
name = "asterisk-conf"        # required, unique; letters, digits, '_', '.', '-'
type = "files"                # files or postgres (default files)
path = "/etc/asterisk"        # files: required absolute job root
include = ["**/*.conf"]       # globs relative to the root (default: everything);
                              # path.Match syntax, "**" = any number of directories
exclude = ["pbxsync-local.conf", "**/*.swp"]
mode = "push"                 # push: one source (the default); mesh: every member
                              # listed in targets may change any file (files jobs)
# conflict = "newest"         # mesh: "newest" (later mtime wins) or "prefer:NODE"
source = "pbx1"               # push: the node whose changes are sent
targets = ["pbx2", "pbx3"]    # push: the nodes that receive them
delta = "auto"                # auto: a delta for every file of 2 KiB or more, on any link;
                              # "always" or "never" (default auto)
order = "rolling"             # parallel; rolling: one target at a time; rolling-sites: one site
                              # at a time, its first host first (default parallel)
keep = 20                     # known-good generations kept for rollback (default 20, at least 2)
debounce = "20ms"             # gather file events this long (default 20ms, at most 10s)
check = "test -s extensions.conf"  # optional shell check after every change, run in the job root
check_timeout = "30s"         # per check command (default 30s)
preserve_suid = false         # keep setuid/setgid bits of files from the source (default false:
                              # a target drops them and logs it; setgid directories keep theirs)
templates = ["*.tmpl"]        # files jobs: X.tmpl is synced and rendered to X on every host with
                              # Go text/template ({{ .Vars.external_ip }}); X itself is not synced
# backup = { every = "24h", keep = 7, dir = "/var/backups/pbxsync" }
                              # optional: write the newest good generation to dir every 24h
                              # (pbxsync backup's archive), keep the newest 7 (default 7)

  # Rules map changed files to Asterisk actions and checks. A rule needs
  # match and an action or a check (or both).
  [[job.rule]]
  match = ["extensions.conf", "extensions_*.conf"]  # a glob or a list of globs
  action = "reload pbx_config.so"

  [[job.rule]]
  match = "pjsip*.conf"
  action = "reload res_pjsip.so"
  check = "asterisk -rx 'pjsip show endpoints' >/dev/null"

  [[job.rule]]
  match = ["asterisk.conf", "modules.conf"]
  action = "restart"
  when = "no-channels"        # optional condition on host state

# A second push job: custom sounds, from pbx2 to the others, all at once.
[[job]]
name = "sounds"
path = "/var/lib/asterisk/sounds/custom"
source = "pbx2"
targets = ["pbx1", "pbx3"]
order = "parallel"
window = ["02:00-04:00", "22:00-23:00"]  # send changes only in these windows (local time; default
                              # always); 'pbxsync sync --now' sends at once

# A postgres job: Asterisk realtime tables, pushed from pbx1.
[[job]]
name = "realtime"
type = "postgres"
dsn_file = "/etc/pbxsync/realtime.dsn"  # file holding the DSN; or dsn = "postgres://..." (not both)
tables = ["ps_endpoints", "ps_aors", "ps_auths", "extensions"]
source = "pbx1"
targets = ["pbx2", "pbx3"]

# How to reach the local Asterisk. Leave the table out for no Asterisk control.
[asterisk]
ami = "127.0.0.1:5038"        # host:port of the manager interface
username = "pbxsync"          # AMI user (manager.conf); required with ami
secret_file = "/etc/pbxsync/ami.secret"  # absolute; holds the AMI secret; required with ami
log = "/var/log/asterisk/messages.log"   # read by log checks; leave it out to have pbxsync ask Asterisk (core show settings, logger show channels)
service = "asterisk.service"             # systemd unit of "service start|stop|restart" actions (default)

# Commands run when a peer goes away or comes back.
[[on_peer_down]]
peer = "pbx2"                 # required peer name
grace = "5s"                  # wait this long first (default 5s)
command = "logger -t pbxsync pbx2 is down"  # required shell command
timeout = "60s"               # default 60s

[[on_peer_up]]
peer = "pbx2"
grace = "0s"                  # default 0
command = "logger -t pbxsync pbx2 is back"
timeout = "60s"
`
