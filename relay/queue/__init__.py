"""The durable spool: records on disk, their states, and the delivery loop over them."""
