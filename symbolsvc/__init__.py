"""symbolsvc: per-agency pseudonymous symbols (機関別符号) for individual numbers.

Public surface: :mod:`symbolsvc.core` (the network-free service core),
:mod:`symbolsvc.errors` (the error hierarchy), :mod:`symbolsvc.cli` (the
``symbolsvc`` command). Everything else is machinery behind them.
"""

__version__ = "0.1.0"
