"""The gRPC servicers: thin translations between protobuf messages and :class:`symbolsvc.core.Core`.

They hold no business rule and no role check (the interceptor does those);
core errors become status codes in :mod:`.status`.
"""
