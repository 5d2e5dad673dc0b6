"""Files for CAT tools and other systems: XLIFF 2.0, TMX 1.4, TBX, CSV. Pure functions from the
service's records to bytes and back; parsing never resolves entities or touches the network."""
