"""Monitoring: the serving inference log and the Evidently drift check.

Heavy imports (Evidently) happen inside :mod:`hairseg.monitoring.drift` only.
"""
