package caps

// SetHooks lets a test see queries start (started, when a ver is first
// asked for) and each client's answer taken or timed out (done). They
// run with the module's lock held.
func SetHooks(m *Module, started func(hash, ver string), done func(hash, ver string, verified bool)) {
	m.hooks = hooks{started: started, done: done}
}
