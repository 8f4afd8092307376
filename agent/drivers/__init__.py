"""Host logic per firmware family: handshake, streaming, realtime commands, status.

A driver sits between the job runner and one :class:`~agent.transport.link.ByteLink`; it owns
the sans-I/O flow-control state machine of its family and never does I/O of its own beyond the
link it is given (tests give it a pseudo-terminal, a station a USB serial port).
"""
