"""The headless engine: time, ports, sockets and the model file. Never imports torch."""
