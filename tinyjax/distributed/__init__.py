"""Devices and hosts in one place: the placement of a run over devices (``parallel``: one device,
sharding over a mesh, pmap) and the processes of one run (``hosts``: jax.distributed)."""
