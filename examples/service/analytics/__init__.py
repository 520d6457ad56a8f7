"""Analytics: events per publisher and day, rollups on schedules, cached reads."""
