import asyncio
import httpx

async def process_batch_async(texts: List[str]) -> Dict[str, Any]:
    """Process batch asynchronously."""
    async with httpx.AsyncClient() as client:
        # Submit job
        response = await client.post(
            "http://localhost:8000/api/v1/batch/predict",
            json={"texts": texts}
        )

        job = response.json()

        # Poll for completion
        while True:
            status = await client.get(
                f"http://localhost:8000/api/v1/batch/status/{job['job_id']}"
            )
            status_data = status.json()

            if status_data["status"] == "completed":
                # Get results
                results = await client.get(
                    f"http://localhost:8000/api/v1/batch/results/{job['job_id']}"
                )
                return results.json()

            await asyncio.sleep(0.5)  # Poll every 500ms
