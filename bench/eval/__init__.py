"""Evaluation: the attack loop, the protocols (single attack, chained AutoAttack, transfer),
per-point masks and Wilson intervals, and the gradient-masking audit.

The package imports nothing itself: ``bench table`` reads masks and checks
(``perpoint``, ``checks``) without loading PyTorch, which the attack loop needs.
``protocols.PROTOCOLS`` names every protocol and imports the module of one when it is used.
"""
