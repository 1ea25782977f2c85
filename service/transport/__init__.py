"""The HTTP and gRPC plumbing under the protocol adapters: the ASGI app and its middleware,
body and JSON handling, error rendering, auth, the gRPC server, its error mapping and health.
Knows no protocol: the adapters' routes and servicers are handed in by ``service.app``."""
