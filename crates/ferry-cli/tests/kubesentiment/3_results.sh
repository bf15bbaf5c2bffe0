curl "http://localhost:8000/api/v1/batch/results/550e8400-e29b-41d4-a716-446655440000"
