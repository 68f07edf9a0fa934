"""The control socket: steer a running engine (vocabulary, sources, pause, targets, state) over ZeroMQ."""
