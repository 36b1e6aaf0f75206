"""traffic layer of wideep (see README, "Architecture")."""
