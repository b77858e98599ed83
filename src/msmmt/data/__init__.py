"""Sample records, dataset readers, label maps, synthetic clips and the torch Dataset."""
