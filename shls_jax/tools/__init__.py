"""The commands (`[project.scripts]`): each module one command, its flags defined when it runs
(`cli`). Nothing in the package imports them."""
