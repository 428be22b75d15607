"""docker-compose.yml and the files it mounts, checked against each other without Docker."""
