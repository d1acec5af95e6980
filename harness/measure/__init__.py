"""Measure: timing windows, noise, roofline calibration, harness overhead, environment, code
size, statistics."""
