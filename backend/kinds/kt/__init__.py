"""Knowledge tracing with explicit mastery and gain heads (the seed-003 experiment)."""
