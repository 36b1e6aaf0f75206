"""placement layer of wideep (see README, "Architecture")."""
