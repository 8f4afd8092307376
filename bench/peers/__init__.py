"""The GRBL peer benchmark's parts (bench/grbl_peers.py): the device with its wire tap, the
senders (the agent, cncjs, grbl-streamer, stop-and-wait) and the CPU bookkeeping."""
