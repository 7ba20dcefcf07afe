"""Generated protobuf and gRPC code for package symbolsvc.v1 (do not edit; see scripts/gen-proto)."""
