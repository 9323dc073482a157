"""Reference implementations, one module per chapter (generated from chapters/src by `make build`)."""
