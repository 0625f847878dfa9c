"""Views, tags and categories: defining them, the folders that gather their members, who
may see a member, and their checks. Imported by the namespace core, `admin` and the CLI;
imports the namespace core, `namespace.files` and the catalog."""
