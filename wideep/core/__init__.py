"""core layer of wideep (see README, "Architecture")."""
