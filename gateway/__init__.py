"""The vinfer gateway: Sign-In with Ethereum, content-addressed blobs, and a view of jobs on chain
(docs/gateway.md). `gateway.app.create_app(settings)`, `gateway.server.serve_in_thread(settings)`."""
