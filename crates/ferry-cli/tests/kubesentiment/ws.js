// WebSocket for real-time job status
const ws = new WebSocket('ws://localhost:8000/api/v1/batch/ws/{job_id}');

ws.onmessage = (event) => {
    const status = JSON.parse(event.data);
    console.log(`Job ${status.job_id}: ${status.status} (${status.progress_percentage}%)`);
};
