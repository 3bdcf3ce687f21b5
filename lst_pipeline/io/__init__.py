"""Everything that touches storage: input stacks, output cubes, sensor readers."""
