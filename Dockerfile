FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE alembic.ini ./
COPY src ./src
COPY alembic ./alembic
RUN pip install --no-cache-dir -e . && useradd --create-home finsync && mkdir /data && chown finsync /data
USER finsync
EXPOSE 8000
CMD ["sh", "-c", "finsync migrate && finsync serve --host 0.0.0.0 --port 8000"]
