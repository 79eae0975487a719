"""Bring your own teacher: reading a user's trained network (`source`) and building it as
a module behind an input adapter (`build`). Attaching it to a chain is the engine's
(`engine.own_teacher`)."""
