"""The transport: everything between a client's socket and the domain.

Tornado answers the HTTP request and routes it; once a WebSocket handshake is
accepted, the connection is detached from Tornado (``RequestHandler.detach``)
and owned here: framing, masking, UTF-8 and close-code validation,
fragmentation, keepalive, size limits, back-pressure and the closing
handshake. Parsing is websockets' sans-I/O ``Protocol``; this package drives it
and adds a short path for the most common frame. The domain sees a connection
only through ``streams.client.Client``.
"""
