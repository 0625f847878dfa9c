"""Work only the command line runs, never the daemon: fsck, backups, duplicate finding,
copies made by a storage, scans of file sources. Imported by the CLI alone; imports the
namespace and the layers below it."""
