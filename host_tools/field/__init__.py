"""Field tools: build, provision and flash boards; the technician console and data pull."""
