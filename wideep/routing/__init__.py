"""routing layer of wideep (see README, "Architecture")."""
