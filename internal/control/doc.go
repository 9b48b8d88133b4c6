// Package control is the agent's local control socket: a unix socket in
// data_dir (mode 0600, so only the agent's user can use it) over which the
// pbxsync command asks the running agent for its status or tells it to roll
// a job back. One JSON request and one JSON response per connection.
package control
