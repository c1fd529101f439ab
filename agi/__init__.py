"""AGI side: the AGI protocol layer over pyst2, the FastAGI server, the flow engine and the Asterisk peer emulator."""
