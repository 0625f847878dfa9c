"""Storage backends behind one small interface (`markfs.backends.base.Backend`)."""
