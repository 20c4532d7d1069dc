"""`tt bench`: analytic FLOPs, timed training steps per mode, and input-pipeline timing."""
