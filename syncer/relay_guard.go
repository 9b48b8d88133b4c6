package syncer

// saveReplayGuard keeps the newest version relayed to this target
// (federation.newest) in the job's state in the store, so that after a
// restart it still refuses a relay's replay of an older one.
func (j *job) saveReplayGuard() {
	if p, ok := j.kind.(*pgJob); ok {
		p.save()
		return
	}
	if err := j.a.store.PutJobState(j.cfg.Name, j.persisted()); err != nil {
		j.log.Warn("cannot save the newest relayed version", "err", err)
	}
}
