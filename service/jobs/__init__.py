"""The worker process: the loop, threads and signals around the rounds of work in ``service.work``."""
