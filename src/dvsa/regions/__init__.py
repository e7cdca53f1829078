"""Image regions: proposals, the region CNN (detector + 4096-d encoder), the regions HDF5 store."""
