"""The `lpm` subcommands that touch a device: backends, profile, recheck, measure, adapt (entry-point group
`lpm_zoo.commands`; the CLI host in `lpm_zoo.cli` finds them there)."""
