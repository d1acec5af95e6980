"""Run: plan the (variant, seed) runs, launch one process each, collect events, survive
failures, resume."""
