"""perf layer of wideep (see README, "Architecture")."""
