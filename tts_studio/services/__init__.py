"""The service layer shared by the HTTP routes and the UI."""
