"""report layer of wideep (see README, "Architecture")."""
