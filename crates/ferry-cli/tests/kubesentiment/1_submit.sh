curl -X POST "http://localhost:8000/api/v1/batch/predict" \
     -H "Content-Type: application/json" \
     -d '{
       "texts": [
         "I love this product! It is amazing.",
         "This is terrible and disappointing.",
         "It is okay, nothing special."
       ],
       "priority": "medium",
       "timeout_seconds": 300
     }'
