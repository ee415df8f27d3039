"""Speech engines behind one small protocol, a declarative registry and a shared model manager."""
