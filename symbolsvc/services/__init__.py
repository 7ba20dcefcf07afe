"""The gRPC servicers: thin translations between protobuf messages and the domain
(:class:`symbolsvc.core.Core`, :class:`symbolsvc.disclosure.Disclosure`,
:class:`symbolsvc.log.service.AccessLog`).

They hold no business rule and no role check (the interceptor does those); domain
errors become status codes in :mod:`symbolsvc.status`, beside the interceptor.
"""
