"""Running roles across machines: device choice, placement, process groups, role groups, weight sync."""
