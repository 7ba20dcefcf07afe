"""Generated protobuf and gRPC code for symbolsvc.v1 (scripts/gen-proto; do not edit)."""
