"""Dialling out: join a call by SIP URI and transcribe it (the endpoint:connect API)."""
