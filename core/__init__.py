"""The bottom layer every package may use: settings and the HTTP error table."""
