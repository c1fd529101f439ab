"""Recording life-cycle: finalize MixMonitor legs, verify, archive, quarantine and retention."""
