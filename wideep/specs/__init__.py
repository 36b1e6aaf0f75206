"""specs layer of wideep (see README, "Architecture")."""
